"""Image readiness (``python -m components ready STACK``): the images a site needs, checked from
the parent registry through the sync to every node's mirror. Reads only."""
