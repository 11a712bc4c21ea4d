"""control/: the show as performers and cues change it. The address table (one row per
control), the show state that applies controls on the main thread through a small typed host
interface, captures, and the OSC server that validates and enqueues. Imports core/ only."""
