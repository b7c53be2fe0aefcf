"""What the dev (``tools.e2e``) and prod (``tools.e2e_prod``) end-to-end runs share."""
