"""steport::approx torch custom ops (ai.steport.approx)."""
