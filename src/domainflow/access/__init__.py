"""Who may call the prediction server: API keys with a role and a scope of domains, and their rate limits."""
