"""steport::logic torch custom ops (ai.steport.logic)."""
