"""The distributed runtime (Faust app, topics, agents): thin wiring over safety_stream's
processors. Filled in by the distributed-runtime work; nothing here runs yet."""
