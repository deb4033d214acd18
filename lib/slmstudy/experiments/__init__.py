"""One module per notebook: its parameter schema, the engine configurations it
measures, and the analysis steps its cells call."""
