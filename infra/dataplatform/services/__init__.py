"""The platform's services, each declared once for both tiers."""
