"""inputs/: where the outside world comes in. Cameras (a device, a video file, a stream URL)
yield frames into the camera slot; microphones (a device, a WAV file) yield audio chunks into
the audio queue. A lost device is reopened with backoff. Imports core/ only."""
