import { formatRef, type ImageRef } from '../plan/image-ref.js';

/**
 * Lets the target stage's cache write build on the deploy push instead of racing it.
 *
 * The target's cache tags and the deploy tag hold the same local image. Pushed by two
 * `docker push` at once into one repository, the new layer is uploaded once for both,
 * and on the 20.10 engine one of them can send its manifest before the registry has
 * committed that blob: "manifest blob unknown", then a retry (seen in a cold run of
 * the five-stage bench app). So a cache write of that image into the deploy's
 * repository waits for the deploy push and copies its manifest (no layer moves), and
 * a cache tag that is itself a deploy tag is left to the deploy push.
 */

interface PendingDeploy {
  readonly local: string;
  readonly ref: ImageRef;
  readonly pushed: Promise<boolean>;
  settle(ok: boolean): void;
}

const sameRepository = (a: ImageRef, b: ImageRef): boolean => (a.domain ?? 'docker.io') === (b.domain ?? 'docker.io') && a.path === b.path;

export class DeployHandoff {
  private readonly pending: PendingDeploy[] = [];

  /** The deploy pushes this run will make of the local image `local` (only when it pushes). */
  expect(local: string, refs: readonly ImageRef[]): void {
    for (const ref of refs) {
      let settle: (ok: boolean) => void = () => undefined;
      const pushed = new Promise<boolean>((resolve) => {
        settle = resolve;
      });
      this.pending.push({ local, ref, pushed, settle });
    }
  }

  /** Records how the deploy push of `ref` ended. */
  settle(ref: ImageRef, ok: boolean): void {
    for (const deploy of this.pending) if (formatRef(deploy.ref) === formatRef(ref)) deploy.settle(ok);
  }

  /** The deploy pushes not settled by now will not happen (the deploy stopped early or never ran). */
  end(): void {
    for (const deploy of this.pending) deploy.settle(false);
  }

  /** True when `ref` is a tag the deploy push writes: a cache write must not overwrite it. */
  isDeployTag(ref: ImageRef): boolean {
    return this.pending.some((deploy) => formatRef(deploy.ref) === formatRef(ref));
  }

  /**
   * The deploy push of `local` into the repository of `cacheRef`, if there is one:
   * resolves to its tag once it pushed, or undefined when it failed or did not run.
   */
  pushedInto(local: string, cacheRef: ImageRef): Promise<ImageRef | undefined> | undefined {
    const deploy = this.pending.find((d) => d.local === local && sameRepository(d.ref, cacheRef));
    return deploy?.pushed.then((ok) => (ok ? deploy.ref : undefined));
  }
}
