"""The GraphQL schema: Strawberry types, the federation `Schema`, the committed SDL."""
