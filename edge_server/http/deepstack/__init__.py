"""DeepStack's and CodeProject.AI's APIs, as Home Assistant, Blue Iris, Agent DVR and Frigate
call them: scene, detection, custom models, and the status routes."""
