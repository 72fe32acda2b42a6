"""Executors: plans made once per operation (compiled) and straight-line code for scalar
fields (fast_path), with graphql-core's standard executor as the fallback."""
