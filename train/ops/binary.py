"""steport::binary torch custom ops (ai.steport.binary)."""
