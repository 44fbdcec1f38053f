"""Pure engine of the studio: no Qt here (a test enforces it), torch imported lazily."""
