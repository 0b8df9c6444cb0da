"""Who is this wallet, and what style fits it."""
