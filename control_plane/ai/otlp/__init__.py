"""OTLP/HTTP traces: the wire (protobuf or JSON, gzip) and GenAI spans as AI events."""
