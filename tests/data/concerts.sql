-- concerts.sql -- a small purpose-built database for the gate, executor and
-- schema tests: four tables with primary and foreign keys, mixed-case
-- quoted names, a text column holding numbers and invented rows (six
-- singers, four stadiums, six concerts).  Built at build time into
-- build/tests/data/concerts.db; the tests copy it before they attack it.
-- The rows are made up for these tests.
PRAGMA page_size = 4096;
CREATE TABLE "stadium" (
"Stadium_ID" int,
"Location" text,
"Name" text,
"Capacity" int,
"Highest" int,
"Lowest" int,
"Average" int,
PRIMARY KEY ("Stadium_ID")
);
CREATE TABLE "singer" (
"Singer_ID" int,
"Name" text,
"Country" text,
"Song_Name" text,
"Song_release_year" text,
"Age" int,
"Is_male" bool,
PRIMARY KEY ("Singer_ID")
);
CREATE TABLE "concert" (
"concert_ID" int,
"concert_Name" text,
"Theme" text,
"Stadium_ID" text,
"Year" text,
PRIMARY KEY ("concert_ID"),
FOREIGN KEY ("Stadium_ID") REFERENCES "stadium"("Stadium_ID")
);
CREATE TABLE "singer_in_concert" (
"concert_ID" int,
"Singer_ID" text,
PRIMARY KEY ("concert_ID","Singer_ID"),
FOREIGN KEY ("concert_ID") REFERENCES "concert"("concert_ID"),
FOREIGN KEY ("Singer_ID") REFERENCES "singer"("Singer_ID")
);
INSERT INTO stadium VALUES
 (1, 'Harbour Point', 'Northgate Arena', 12000, 9800, 310, 4200),
 (2, 'Millbrook', 'Riverside Bowl', 30500, 21000, 1200, 9800),
 (3, 'Eastfield', 'Cedar Park', 8200, 7900, 150, 2600),
 (4, 'Old Quay', 'Lighthouse Ground', 4100, 4000, 90, 1300);
INSERT INTO singer VALUES
 (1, 'Ada Byrne', 'Ireland', 'Paper Boats', '2011', 41, 'F'),
 (2, 'Tomas Varga', 'Hungary', 'Night Tram', '2016', 29, 'T'),
 (3, 'Lea Moreau', 'France', 'Cerf-volant', '2008', 47, 'F'),
 (4, 'Kenji Aoki', 'Japan', 'Late Bloom', '2019', 24, 'T'),
 (5, 'Rosa Lind', 'Sweden', 'Ice Harbour', '2013', 35, 'F'),
 (6, 'Pierre Dumas', 'France', 'Rue Sans Fin', '2004', 52, 'T');
INSERT INTO concert VALUES
 (1, 'Spring Lights', 'Free choice', '1', '2014'),
 (2, 'Summer Tides', 'Duets', '2', '2014'),
 (3, 'Autumn Notes', 'Ballads', '2', '2015'),
 (4, 'Winter Echo', 'Acoustic', '3', '2015'),
 (5, 'Harbour Nights', 'Covers', '4', '2015'),
 (6, 'New Year Live', 'Party', '1', '2016');
INSERT INTO singer_in_concert VALUES
 (1, '2'), (1, '3'), (1, '5'), (2, '3'), (2, '6'), (3, '5'),
 (4, '4'), (5, '6'), (5, '1'), (6, '1');
