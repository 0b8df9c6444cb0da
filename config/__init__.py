"""Settings, collection files, start-up chain checks and the shared clients every process builds from them."""
