"""The vision stage: what the camera sees, read into a typed `Scene` a few times a second on
its own thread (people, presence, silhouette, colours, light, motion, an optional caption).
Imports core/ (and the show schema) only. Faces are counted, never identified; nothing is
stored unless a show asks."""
