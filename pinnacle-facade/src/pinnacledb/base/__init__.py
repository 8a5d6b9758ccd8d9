"""The Datalayer and its helpers (``pinnacledb.base.datalayer.Datalayer``)."""
