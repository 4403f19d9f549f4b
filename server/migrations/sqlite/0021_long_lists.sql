-- Long member lists (sqlite). Keep in step with the other engine's 0021.

-- The name-order indexes carry the unified code, so a page of a whole subtree is found in the
-- index alone (the range is checked there), from either end of the list: the last of 26,000
-- pages costs what the first does (`member::routes::ids_of_page`).
DROP INDEX members_sort_pinyin;
DROP INDEX members_sort_strokes;
CREATE INDEX members_sort_pinyin ON members (sort_pinyin, id, org_code);
CREATE INDEX members_sort_strokes ON members (sort_strokes, id, org_code);
