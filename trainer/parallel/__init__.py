"""3D parallel layout: topology, rank placement and process groups."""
