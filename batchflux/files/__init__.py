"""What lands in a run directory and how: the directory's file names, verified image downloads,
durable writes (fsync, atomic rename), the group commit of images, and secrets kept out of files.

May import: api (the media body it reads and the error it raises). Nothing else of batchflux.
"""
