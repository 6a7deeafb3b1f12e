"""The prediction server's routes, one router per concern; `domainflow.serving.app.create_app` includes them."""
