"""Settings read once into frozen objects (the guard's and the risk side's). Imports nothing else of guard."""
