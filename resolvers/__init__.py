"""Field resolvers: validate arguments, ask the request's loaders, return rows."""
