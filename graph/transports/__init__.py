"""How operations arrive and leave: GraphQL over HTTP, WebSocket (both protocols) and
Server-Sent Events, the subscriptions they carry, GraphiQL and filing documents. Each translates
its protocol to and from the pipeline (graph/pipeline); HTTP statuses are decided here only."""
