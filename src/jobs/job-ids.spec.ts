import { v7 as uuidv7, validate, version } from 'uuid';
import { newJobIds } from './job-ids';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('newJobIds', () => {
  it('gives UUIDv7s in order, in step with the ids v7() gives between them', () => {
    const ids: string[] = [];
    for (let round = 0; round < 20; round++) ids.push(uuidv7(), ...newJobIds(round % 7), uuidv7(), ...newJobIds(1000));
    expect(ids).toHaveLength(20 * 2 + 57 + 20 * 1000);
    expect(ids.filter((id) => !UUID_V7.test(id) || !validate(id) || version(id) !== 7)).toEqual([]);
    expect(ids.filter((id, i) => i > 0 && id <= ids[i - 1])).toEqual([]);
  });

  it('gives none for none', () => {
    expect(newJobIds(0)).toEqual([]);
  });
});
