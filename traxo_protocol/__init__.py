"""The agent protocol shared by traxo-agent and the control plane: generated gRPC code and the check
types' capabilities.

`traxo_protocol.traxo.agent.v1` is generated from protos/ by scripts/gen_protos.py (do not edit it);
`capabilities` is written by hand. This package imports nothing but protobuf and grpcio, so neither
process pulls in the other's package or dependencies through it.
"""
