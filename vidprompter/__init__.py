"""The installed product's name: the `vidprompter` console command (app.console) and, in a wheel, the data a
checkout keeps beside the code: vidprompter/configs (the repository's configs/) and vidprompter/assets
(assets/), found through engine.paths."""
