"""composekit: deploy a FastAPI app to one server with Docker Compose, Traefik and ACME."""
