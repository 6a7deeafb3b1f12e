"""The prediction server: weighted routing between a domain's registered versions, prediction log, feedback."""
