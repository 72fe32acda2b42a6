"""The one chain every operation runs through, whatever carries it: the document from the
request (text, APQ hash, manifest id), limits before and after parsing, validation, cost and
budget, execution, masking. Each policy in its own module;
`pipeline.Pipeline` runs them in order."""
