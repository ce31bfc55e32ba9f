"""The tamper-evident audit log: hash chaining, verification and value HMACs."""
