"""A real Flink 2.3 session cluster on one machine, edge TaskManagers behind shaped veth links."""
