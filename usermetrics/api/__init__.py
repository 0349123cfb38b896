"""The JSON faces (async views): NAT's endpoint and ours, history, exports, Prometheus, and their one access check."""
