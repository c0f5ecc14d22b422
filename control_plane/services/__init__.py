"""Domain services: they own transactions and never import FastAPI or grpc."""
