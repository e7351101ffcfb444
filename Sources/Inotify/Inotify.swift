// Placeholder; filled in by the spine.
