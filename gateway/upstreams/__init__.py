"""The upstream clients: transport, resilience, rate limits, endpoints, OMA and CBC."""
