"""What an LLM monitor's usage reads from its hourly rollups and events, and their retention."""
