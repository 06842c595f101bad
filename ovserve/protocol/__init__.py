"""Transport-neutral request/response types shared by the front ends and the graph."""
