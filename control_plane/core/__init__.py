"""The kernel every part of the control plane uses: ids, time, domain errors, the change feed."""
