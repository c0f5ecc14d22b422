"""The durable ingest: requests' events written by group commit, in one transaction a group."""
