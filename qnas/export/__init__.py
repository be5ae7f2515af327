"""Export: one emitter walks the network plan, one writer per registered profile; latency backends."""
