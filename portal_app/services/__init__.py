"""Domain services: plain functions that flush, never commit. The edge commits."""
