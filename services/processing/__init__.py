"""Processing (xử lý hồ sơ)."""
