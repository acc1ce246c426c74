"""Operations API: what failed, for platform operators, and how to re-drive or discard it."""
