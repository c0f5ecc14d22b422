"""AI monitoring: LLM monitors' events (ingest, OTLP), their prices, usage rollups, insights and
budgets."""
