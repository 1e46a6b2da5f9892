"""Hardware descriptions and deployment profiles: schema, units and safe YAML loading."""
