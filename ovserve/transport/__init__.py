"""Front ends: wire formats begin and end here."""
