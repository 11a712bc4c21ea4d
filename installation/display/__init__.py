"""display/: what reaches the screen. The presenter shows the newest generated frame at the
display's own rate with crossfades, captions, a label and the HUD, and records what was shown.
Imports core/ only; runs on the main thread, as pygame wants."""
