-- Listing order per class (issue 10: listings page). A page of a class's
-- incidents read incidents_class_created and sorted every incident of the
-- class (0.6 s a page for a class of 50,000); this index gives the page in
-- order and a cursor's position at once. state rides along so a class and
-- state filter, and its count, never read the table to test it.
CREATE INDEX incidents_class_order ON incidents (class, severity_rank DESC, number DESC, state);
