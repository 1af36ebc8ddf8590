#!/usr/bin/env python3
"""Writes testdata/oracle/*.json: the records each fixture must load to, computed independently of the Go
code with Python's csv and json modules. Rules mirrored from the package docs: captions cleaned with
' '.join(raw.split()); Flickr captions ordered by #n, COCO by annotation id; ids = COCO id, else the
leading number of the file name (Flickr photo id) when all are distinct, else 1-based position."""
import csv, json, os, re

here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)


def ids_for(names):
    ids = []
    for n in names:
        m = re.match(r'^(\d{1,15})[_.]', os.path.basename(n))
        if not m:
            break
        ids.append(int(m.group(1)))
    if len(ids) == len(names) and len(set(ids)) == len(ids):
        return ids
    return list(range(1, len(names) + 1))


def records(images, ids=None):
    """images: list of (name, split, [(id, raw)]) in order."""
    names = [im[0] for im in images]
    ids = ids or ids_for(names)
    out = []
    for (name, split, caps), i in zip(images, ids):
        out.append({"name": name, "id": i, "split": split,
                    "captions": [' '.join(r.split()) for _, r in caps],
                    "raw": [r for _, r in caps], "caption_ids": [c for c, _ in caps]})
    return out


def token(path):
    order, caps = [], {}
    for line in open(path, encoding='utf-8').read().splitlines():
        key, cap = line.split('\t')
        name, n = key.rsplit('#', 1)
        if re.search(r'\.jpg\.\d+$', name):  # documented anomaly rule: merge into the base image
            name = name.rsplit('.', 1)[0]
        if name not in caps:
            order.append(name)
            caps[name] = []
        caps[name].append((int(n), cap))
    return records([(n, "", sorted(caps[n])) for n in order])


def kaggle(path):
    order, caps = [], {}
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    for name, cap in rows[1:]:
        if name not in caps:
            order.append(name)
            caps[name] = []
        caps[name].append((len(caps[name]), cap))
    return records([(n, "", caps[n]) for n in order])


def coco(path, split):
    d = json.load(open(path, encoding='utf-8'))
    caps = {im['id']: [] for im in d['images']}
    for a in d['annotations']:
        caps[a['image_id']].append((a['id'], a['caption']))
    ims = [(im['file_name'], split, sorted(caps[im['id']])) for im in d['images']]
    return records(ims, [im['id'] for im in d['images']])


def karpathy(path):
    d = json.load(open(path, encoding='utf-8'))
    ims, cocoids = [], []
    for im in d['images']:
        name = im['filename'] if not im.get('filepath') else im['filepath'] + '/' + im['filename']
        split = 'train' if im['split'] == 'restval' else im['split']
        ims.append((name, split, [(s['sentid'], s['raw']) for s in im['sentences']]))
        cocoids.append(im.get('cocoid'))
    return records(ims, cocoids if all(c is not None for c in cocoids) else None)


def dump(name, recs):
    with open(os.path.join('oracle', name), 'w', encoding='utf-8') as f:
        json.dump(recs, f, indent=0, ensure_ascii=False)
        f.write('\n')


dump('Flickr8k.token.first200images.json', token('Flickr8k.token.first200images.txt'))
dump('Flickr8k.token.lines6726-6740_anomaly.json', token('Flickr8k.token.lines6726-6740_anomaly.txt'))
dump('results_20130124.token.first10lines.json', token('results_20130124.token.first10lines_as_quoted.txt'))
dump('captions.first200images.json', kaggle('captions.first200images.txt'))
dump('captions.header_plus_lines1082-1086_1852-1856.json', kaggle('captions.header_plus_lines1082-1086_1852-1856.txt'))
dump('captions_val2014.subset47.json', coco('captions_val2014.subset47.json', 'val'))
dump('captions_val2017.coco-mini.json', coco('captions_val2017.coco-mini.json', 'val'))
dump('dataset_flickr8k.excerpt.json', karpathy('dataset_flickr8k.excerpt.json'))
dump('dataset_coco.first_image_record.wrapped.json', karpathy('dataset_coco.first_image_record.wrapped.json'))
