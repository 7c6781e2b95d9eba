"""The unified GraphQL schema over OMA subscriptions and CBC resources."""
