"""The operator's page and the monitoring endpoints: a small web server on its own thread
(aiohttp), off the render loop. It reads the runtime through a bridge the app provides and
sends controls through the same address table as OSC."""
