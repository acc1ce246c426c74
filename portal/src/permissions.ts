// What the signed-in person may do, from the same built-in roles the APIs enforce (shared/authz.py;
// roles.json is checked against it by the Python tests), so menus and buttons follow permissions.
import roles from "./roles.json";

export interface Claims {
  tenant_id?: string;
  roles?: string[];
  platform_operator?: boolean;
  email?: string;
}

export class Permissions {
  private readonly granted: Set<string>;
  readonly operator: boolean;

  constructor(claims: Claims) {
    this.operator = claims.platform_operator === true;
    const table = roles as Record<string, string[]>;
    this.granted = new Set((claims.roles ?? []).flatMap((role) => table[role] ?? []));
  }

  can(permission: string): boolean {
    return this.operator || this.granted.has(permission);
  }
}
