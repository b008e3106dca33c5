"""The node's database: SQLModel tables and the engine/session helpers."""
